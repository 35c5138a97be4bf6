//go:build race

package mediaport_test

// raceEnabled tells tests that the race detector runs, which changes what
// allocates.
const raceEnabled = true
