package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/trainfeed/trainfeed/internal/runner"
)

// ErrRefused is wrapped by every error of a download the address policy
// refused: a link-local or cloud metadata address, or a private or loopback
// one that is not allowed. Such errors are also marked runner.Permanent.
var ErrRefused = errors.New("address refused")

// class is how the address policy sees an IP address.
type class int

const (
	public   class = iota
	private        // refused unless Config.AllowPrivate or allow-listed
	loopback       // as private
	never          // refused whatever the configuration says
)

func (c class) String() string {
	switch c {
	case private:
		return "a private address"
	case loopback:
		return "a loopback address"
	case never:
		return "a link-local, metadata or non-unicast address"
	}
	return "a public address"
}

// metadataAddrs are cloud metadata and platform endpoints outside the
// link-local ranges: AWS's IPv6 IMDS, Alibaba's metadata service, Azure's
// wireserver.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("168.63.129.16"),
}

// metadataHosts are names of cloud metadata services, refused before any
// lookup.
var metadataHosts = []string{"metadata.google.internal", "metadata.goog", "metadata.azure.internal"}

// neverPrefixes are refused whatever the configuration: "this network",
// link-local, multicast, and IPv4 broadcast.
var neverPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("::/128"),
}

// privatePrefixes are networks inside an organisation: RFC 1918, carrier-grade
// NAT, benchmarking, IETF protocol assignments, the IPv4 reserved block, and
// IPv6 unique local addresses.
var privatePrefixes = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("fc00::/7"),
}

// embedded returns the IPv4 address an IPv6 address carries in its low 32
// bits when it is IPv4-mapped, IPv4-compatible or NAT64 (64:ff9b::/96), so
// that ::ffff:169.254.169.254 is seen as what it reaches.
func embedded(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is6() {
		return a
	}
	b := a.As16()
	compat := b == [16]byte{12: b[12], 13: b[13], 14: b[14], 15: b[15]} && !a.IsLoopback() && !a.IsUnspecified()
	nat64 := netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0x00, 1: 0x64, 2: 0xff, 3: 0x9b}), 96).Contains(a)
	if compat || nat64 {
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	return a
}

// classify places an address in its class.
func classify(a netip.Addr) class {
	a = embedded(a.WithZone(""))
	for _, m := range metadataAddrs {
		if a == m {
			return never
		}
	}
	for _, p := range neverPrefixes {
		if p.Contains(a) {
			return never
		}
	}
	if a.IsLoopback() {
		return loopback
	}
	for _, p := range privatePrefixes {
		if p.Contains(a) {
			return private
		}
	}
	return public
}

// policy decides which hosts and addresses a download may reach.
type policy struct {
	allowPrivate bool
	hosts        map[string]bool // lower-case host names
	suffixes     []string        // ".example.internal" for "*.example.internal"
	prefixes     []netip.Prefix  // allowed addresses and networks
	lookup       func(ctx context.Context, host string) ([]netip.Addr, error)
}

// newPolicy parses Config.AllowHosts: host names ("*." for sub-domains), IP
// addresses and CIDR networks. An entry inside a range that is always refused
// is an error.
func newPolicy(allowPrivate bool, allow []string, lookup func(context.Context, string) ([]netip.Addr, error)) (*policy, error) {
	p := &policy{allowPrivate: allowPrivate, hosts: map[string]bool{}, lookup: lookup}
	if p.lookup == nil {
		p.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	for _, e := range allow {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if pfx, err := netip.ParsePrefix(e); err == nil {
			if classify(pfx.Addr()) == never || classify(lastAddr(pfx)) == never {
				return nil, fmt.Errorf("allow hosts: %s: link-local and metadata addresses are always refused", e)
			}
			p.prefixes = append(p.prefixes, pfx.Masked())
			continue
		}
		if a, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
			if classify(a) == never {
				return nil, fmt.Errorf("allow hosts: %s: link-local and metadata addresses are always refused", e)
			}
			p.prefixes = append(p.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		if strings.ContainsAny(e, "/:[] ") {
			return nil, fmt.Errorf("allow hosts: %q is neither a host name, an address nor a CIDR network", e)
		}
		if rest, ok := strings.CutPrefix(e, "*."); ok {
			p.suffixes = append(p.suffixes, "."+rest)
			continue
		}
		p.hosts[strings.TrimSuffix(e, ".")] = true
	}
	return p, nil
}

// lastAddr returns the highest address of pfx.
func lastAddr(pfx netip.Prefix) netip.Addr {
	a := pfx.Masked().Addr()
	b := a.AsSlice()
	for i := pfx.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return last
}

// hostAllowed reports whether the host name itself is allow-listed.
func (p *policy) hostAllowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if p.hosts[host] {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// check returns nil when a connection to a, reached through host, is
// allowed, and an ErrRefused error saying why not otherwise.
func (p *policy) check(host string, a netip.Addr) error {
	c := classify(a)
	switch c {
	case public:
		return nil
	case never:
		return refused(host, a, c, "")
	}
	if p.allowPrivate || p.hostAllowed(host) {
		return nil
	}
	for _, pfx := range p.prefixes {
		if pfx.Contains(a.Unmap().WithZone("")) {
			return nil
		}
	}
	return refused(host, a, c, " (allow it with --allow-private or --allow-hosts)")
}

func refused(host string, a netip.Addr, c class, hint string) error {
	what := a.String()
	if host != "" && host != what {
		what = fmt.Sprintf("%s (%s)", host, a)
	}
	return runner.Permanent(fmt.Errorf("%w: %s is %s%s", ErrRefused, what, c, hint))
}

// checkHost refuses metadata host names before anything is looked up.
func (p *policy) checkHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, m := range metadataHosts {
		if h == m {
			return runner.Permanent(fmt.Errorf("%w: %s is a cloud metadata service", ErrRefused, host))
		}
	}
	return nil
}

// dialer connects to the addresses the policy allows, and only to them: it
// resolves the host itself and checks every address before dialling it, and
// its Control hook checks the address again at connect time. A host whose
// addresses are all refused fails with ErrRefused; one with a mix is dialled
// at its allowed addresses only. Redirects dial through it too.
type dialer struct {
	policy *policy
	net    *net.Dialer
}

func newDialer(p *policy, d *net.Dialer) *dialer {
	dd := &dialer{policy: p, net: d}
	d.ControlContext = dd.control
	return dd
}

// DialContext is the transport's dial function.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if err := d.policy.checkHost(host); err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = d.policy.lookup(ctx, host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("lookup %s: no addresses", host)
		}
	}
	var allowed []netip.Addr
	var refusal error
	for _, a := range addrs {
		if err := d.policy.check(host, a); err != nil {
			refusal = cmpRefusal(refusal, err)
			continue
		}
		allowed = append(allowed, a)
	}
	if len(allowed) == 0 {
		return nil, refusal
	}
	var errs []error
	for _, a := range allowed {
		c, err := d.net.DialContext(withHost(ctx, host), network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil || runner.IsPermanent(err) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// cmpRefusal keeps the first refusal.
func cmpRefusal(prev, err error) error {
	if prev != nil {
		return prev
	}
	return err
}

type hostKey struct{}

// withHost records the host name an address was resolved from, for control.
func withHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, hostKey{}, host)
}

// control checks the address the socket is about to connect to, as a last
// line of defence: whatever resolved it, nothing connects to an address the
// policy refuses for the host it was resolved from.
func (d *dialer) control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return runner.Permanent(fmt.Errorf("%w: cannot check address %q", ErrRefused, address))
	}
	host, _ := ctx.Value(hostKey{}).(string)
	return d.policy.check(host, ap.Addr())
}
