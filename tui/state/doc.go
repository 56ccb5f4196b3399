// Package state folds the daemon's event stream into what the dashboard
// shows: pulls (requests correlated by client and repository), container
// tokens, layer generations, the tunnel and recent warnings. It is plain
// data with no terminal code, so it is tested without one and `towerreg-dev
// dash` and `up` share it.
package state
