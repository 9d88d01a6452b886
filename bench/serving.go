package bench

import (
	"errors"
	"net"
	"net/http"
)

// serving is an http.Server serving in the background until Close.
type serving struct {
	srv    *http.Server
	served chan struct{} // closed when Serve returns
	err    error         // Serve's error, unless the server was closed
}

// serve starts srv on ln in the background.
func serve(srv *http.Server, ln net.Listener) *serving {
	s := &serving{srv: srv, served: make(chan struct{})}
	go func() {
		defer close(s.served)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s
}

// Close stops the server, closing every connection, and waits for it.
func (s *serving) Close() error {
	err := s.srv.Close()
	<-s.served
	return errors.Join(err, s.err)
}
