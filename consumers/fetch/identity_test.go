package fetch_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/trainfeed/trainfeed/consumers/fetch"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// TestRecordsAs checks which source id the records of each fetch go under:
// the first id that delivered the same body of the same URL and format to
// the dataset.
func TestRecordsAs(t *testing.T) {
	e := newEnv(t)
	v := &validating{version: 1}
	srv := serve(t, v)
	url := srv.URL + "/data.csv"
	h := e.handler(t, fetch.Config{})
	sha1 := e.fetchOnce(t, h, "ids", wire.Source{ID: "a", URL: url}).SHA256
	v.set(2)
	sha2 := e.fetchOnce(t, h, "ids", wire.Source{ID: "x", URL: url}).SHA256
	v.set(1)
	require.NotEqual(t, sha1, sha2)

	steps := []struct {
		name    string
		version int
		dataset string
		src     wire.Source
		want    string
	}{
		{name: "same body, new id", version: 1, src: wire.Source{ID: "b", URL: url}, want: "a"},
		{name: "same id again", version: 1, src: wire.Source{ID: "a", URL: url}, want: "a"},
		{name: "reused id, changed body", version: 2, src: wire.Source{ID: "a", URL: url}, want: "x"},
		{name: "id that holds another body gets a derived one", version: 3, src: wire.Source{ID: "a", URL: url}, want: "a@"},
		{name: "derived id is shared", version: 3, src: wire.Source{ID: "c", URL: url}, want: "a@"},
		{name: "back to the first body", version: 1, src: wire.Source{ID: "d", URL: url}, want: "a"},
		{name: "another dataset", version: 1, dataset: "ids2", src: wire.Source{ID: "e", URL: url}, want: "e"},
		{name: "another format", version: 1, src: wire.Source{ID: "f", URL: url, Format: "tsv"}, want: "f"},
		{name: "another URL", version: 1, src: wire.Source{ID: "g", URL: url + "?x"}, want: "g"},
	}
	derived := ""
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			v.set(st.version)
			ds := st.dataset
			if ds == "" {
				ds = "ids"
			}
			o := e.fetchOnce(t, h, ds, st.src)
			want := st.want
			if want == "a@" {
				if derived == "" {
					require.Regexp(t, `^a@[0-9a-f]{16}$`, o.RecordsAs)
					require.Equal(t, "a@"+o.SHA256[:16], o.RecordsAs)
					derived = o.RecordsAs
				}
				want = derived
			}
			require.Equal(t, want, o.RecordsAs)
			f, ok := e.fetched(t, ds)
			require.True(t, ok)
			if want == st.src.ID {
				require.Empty(t, f.ForSource)
			}
		})
	}
}

// TestRecordsAsConcurrent fetches one body for many new ids at once, through
// two handlers (two members): all agree on one id.
func TestRecordsAsConcurrent(t *testing.T) {
	e := newEnv(t)
	srv := serve(t, &validating{version: 1, etag: true})
	url := srv.URL + "/data.csv"
	hs := []*fetch.Handler{e.handler(t, fetch.Config{}), e.handler(t, fetch.Config{})}
	ids := make([]string, 32)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			src := wire.Source{ID: string(rune('A' + i)), URL: url}
			require.NoError(t, hs[i%2].Handle(context.Background(), msg(t, "race", src)))
			ids[i] = e.outcome(t, "race", src.ID).RecordsAs
		})
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	s, err := e.js.Stream(context.Background(), "TRAINFEED_FETCHED")
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs, "one Fetched: the rest are duplicates of it")
}
