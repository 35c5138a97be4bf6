//go:build !race

package fastfilter_test

const raceEnabled = false
