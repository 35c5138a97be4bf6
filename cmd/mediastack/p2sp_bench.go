package main

import (
	"github.com/mediastack/mediastack/cmd/mediastack/internal/p2spbench"
	"github.com/mediastack/mediastack/internal/bench"
)

// The p2sp suite measures p2sp, which internal/bench (root module) may not
// import: it is added here.
func init() { bench.Register(p2spbench.Suite()) }
