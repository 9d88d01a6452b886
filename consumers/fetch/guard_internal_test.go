package fetch

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want class
	}{
		{"8.8.8.8", public},
		{"2001:4860:4860::8888", public},
		{"127.0.0.1", loopback},
		{"127.255.0.9", loopback},
		{"::1", loopback},
		{"::ffff:127.0.0.1", loopback},
		{"10.0.0.1", private},
		{"172.16.5.4", private},
		{"172.32.0.1", public},
		{"192.168.1.1", private},
		{"100.64.0.1", private},
		{"fc00::1", private},
		{"fd12:3456::1", private},
		{"169.254.169.254", never},
		{"169.254.0.1", never},
		{"fe80::1", never},
		{"fe80::1%eth0", never},
		{"fd00:ec2::254", never},
		{"100.100.100.200", never},
		{"::ffff:169.254.169.254", never},
		{"::a9fe:a9fe", never},
		{"64:ff9b::a9fe:a9fe", never},
		{"64:ff9b::7f00:1", loopback},
		{"0.0.0.0", never},
		{"::", never},
		{"224.0.0.1", never},
		{"ff02::1", never},
		{"255.255.255.255", never},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			require.Equal(t, tt.want, classify(netip.MustParseAddr(tt.addr)))
		})
	}
}
