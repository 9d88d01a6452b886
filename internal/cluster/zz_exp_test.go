package cluster

import (
	"os"
	"testing"
	"time"
)

func TestExpHold(t *testing.T) {
	c := StartProcesses(t, "/tmp/exp/natsd", 3)
	os.WriteFile("/tmp/exp/urls", []byte(c.URLs()), 0o644)
	time.Sleep(40 * time.Second)
}
