//go:build stratascribble

package broker

// scribbleFrames: this build overwrites every buffer given back to the
// frame pool (request frames, and the buffers Fetches read records into),
// so a handler that keeps bytes aliased into its request, or a response
// that gives its read buffers back before it is written, shows wrong bytes
// in tests (go test -tags stratascribble).
const scribbleFrames = true
