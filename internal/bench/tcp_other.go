//go:build !linux

package bench

import (
	"errors"
	"time"
)

// processCPU is not measured off Linux.
func processCPU() time.Duration { return 0 }

// kernelTCPWorkloads need Linux (namespaces, TAP, AF_PACKET).
func kernelTCPWorkloads(Config, int) []Workload { return nil }

func newKernelTCPBench(string, Path, int) (Bench, error) {
	return nil, errors.New("the TCP transfers to the kernel need Linux")
}
