//go:build !race

package mediaport_test

const raceEnabled = false
