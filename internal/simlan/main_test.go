package simlan_test

import (
	"testing"

	"github.com/mediastack/mediastack/internal/netnstest"
)

func TestMain(m *testing.M) { netnstest.Main(m) }
