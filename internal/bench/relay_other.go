//go:build !linux

package bench

import "errors"

func relaySuiteWorkloads(Config) ([]Workload, func() error, error) {
	return nil, nil, errors.New("the relay suite needs Linux (network namespaces)")
}
