// Package tui is the dashboard of towerreg-dev: a Bubble Tea program that
// shows the pulls going through the proxy, the container tokens, the
// injected layer's generations, the tunnel, and recent warnings.
//
// It reads the daemon only through a Source: the typed event stream plus
// the status document, in-process (`towerreg-dev up`) or over HTTP
// (`towerreg-dev dash`, see tui/feed). Events are folded into a
// state.State as they come, in batches; the screen is rendered on a frame
// tick, so a burst of thousands of events costs a few frames, not one
// render each.
package tui
