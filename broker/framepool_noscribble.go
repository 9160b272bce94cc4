//go:build !stratascribble

package broker

// scribbleFrames is off in real builds; see framepool_scribble.go.
const scribbleFrames = false
