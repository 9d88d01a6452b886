package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestExpReady(t *testing.T) {
	for i := 0; i < 15; i++ {
		t.Run("", func(t *testing.T) {
			c := StartProcesses(t, "/tmp/exp/natsd", 3)
			nc, _ := nats.Connect(c.URLs())
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
			if err != nil {
				t.Error(err)
			}
		})
	}
}
