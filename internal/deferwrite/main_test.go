package deferwrite

import (
	"testing"

	"github.com/mediastack/mediastack/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
