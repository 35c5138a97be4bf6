package main

import (
	"github.com/mediastack/mediastack/internal/bench"
	"github.com/mediastack/mediastack/cmd/mediastack/internal/p2spbench"
)

// The p2sp suite lives in the p2sp module, which internal/bench may not
// import: it is added here.
func init() { bench.Register(p2spbench.Suite()) }
