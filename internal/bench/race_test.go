//go:build race

package bench

// raceEnabled tells tests that the race detector runs, which changes what
// allocates (sync.Pool drops some of what it is given).
const raceEnabled = true
