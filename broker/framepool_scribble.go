//go:build stratascribble

package broker

// scribbleFrames: this build overwrites every released request frame, so a
// handler that keeps bytes aliased into its request shows wrong bytes in
// tests (go test -tags stratascribble).
const scribbleFrames = true
