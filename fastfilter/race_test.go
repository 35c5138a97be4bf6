//go:build race

package fastfilter_test

// raceEnabled tells tests that the race detector runs, which changes what
// allocates.
const raceEnabled = true
