package dlq

import (
	"fmt"
	"strings"
	"time"

	"github.com/trainfeed/trainfeed/internal/topology"
	"github.com/trainfeed/trainfeed/internal/wire"
)

// BatchSummary describes a dead-lettered record batch without its values.
type BatchSummary struct {
	SourceID string    `json:"source_id"`
	Dataset  string    `json:"dataset"`
	URL      string    `json:"url"`
	Part     int       `json:"part"`
	Last     bool      `json:"last"`
	Rows     int       `json:"rows"`
	SchemaFP string    `json:"schema_fp"`
	Columns  []string  `json:"columns"` // "name:type"
	Skipped  int       `json:"skipped_rows,omitempty"`
	At       time.Time `json:"at"`
}

// FetchedSummary is a dead-lettered Fetched message.
type FetchedSummary struct {
	SourceID    string    `json:"source_id"`
	ForSource   string    `json:"for_source,omitempty"`
	Dataset     string    `json:"dataset"`
	URL         string    `json:"url"`
	Format      string    `json:"format,omitempty"`
	Records     string    `json:"records,omitempty"`
	Object      string    `json:"object"`
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type,omitempty"`
	Status      int       `json:"status,omitempty"`
	FromCache   bool      `json:"from_cache"`
	FetchedAt   time.Time `json:"fetched_at"`
}

// Payload decodes the entry's original message by the stage that gave up on
// it: a fetch entry holds a wire.Source (credential header values
// redacted), a transform entry a Fetched
// (FetchedSummary), a combine entry a record batch (BatchSummary, without
// its values). It returns the reason when the payload does not decode — a
// malformed source, for one, is why it was dead-lettered.
func (e *Entry) Payload() (any, error) {
	switch e.Stage {
	case topology.ConsumerFetch:
		ct := ""
		if v := e.Headers["Content-Type"]; len(v) > 0 {
			ct = v[0]
		}
		s, err := wire.DecodeSource(e.Data, ct)
		if err != nil {
			return nil, err
		}
		s.Headers = wire.RedactHeaders(s.Headers) // credentials are never shown
		if s.Auth != nil && s.Auth.Basic != nil && !strings.Contains(s.Auth.Basic.Password, "${") {
			basic := *s.Auth.Basic
			basic.Password = wire.Redacted
			s.Auth = &wire.SourceAuth{Basic: &basic}
		}
		return s, nil
	case topology.ConsumerTransform:
		var f wire.Fetched
		if err := wire.Decode(e.Data, &f); err != nil {
			return nil, err
		}
		return FetchedSummary{
			SourceID: f.SourceID, ForSource: f.ForSource, Dataset: f.Dataset, URL: f.URL, Format: f.Format,
			Records: f.Records, Object: f.Object, Size: f.Size, ContentType: f.ContentType, Status: f.Status, FromCache: f.FromCache,
			FetchedAt: f.FetchedAt,
		}, nil
	case topology.ConsumerCombine:
		var b wire.RecordBatch
		if err := wire.Decode(e.Data, &b); err != nil {
			return nil, err
		}
		s := BatchSummary{
			SourceID: b.SourceID, Dataset: b.Dataset, URL: b.URL, Part: b.Part, Last: b.Last, Rows: b.Rows,
			SchemaFP: b.SchemaFP, Skipped: len(b.Skipped), At: b.At,
		}
		for _, c := range b.Columns {
			s.Columns = append(s.Columns, c.Name+":"+string(c.Type))
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown stage %q", e.Stage)
}
