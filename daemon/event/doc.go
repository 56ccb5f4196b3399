// Package event defines the typed events the daemon publishes, and the bus
// that carries them to the dashboard, the log and the status API.
//
// Publishers never block on slow consumers: each subscriber has a buffer, and
// events that do not fit are counted as dropped for that subscriber rather
// than stalling a pull.
package event
