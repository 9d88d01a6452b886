package wire

import "strconv"

// The Nats-Msg-Id of every message trainfeed publishes, built here only:
// JetStream drops a message whose id it stored within the stream's
// duplicate window, so a publish repeated after a crash or a redelivery
// stores nothing twice. docs/wire.md lists them.

// SourceMsgID is the id of source id published by a publisher of scope
// ("" for none): a source published again under the same id is dropped.
func SourceMsgID(scope, id string) string {
	if scope == "" {
		return "source/" + id
	}
	return "source/" + scope + "/" + id
}

// FetchedMsgID is the id of the Fetched of source id in dataset.
func FetchedMsgID(dataset, id string) string { return "fetched/" + dataset + "/" + id }

// RecordsMsgID is the id of part part of the records of source id in
// dataset.
func RecordsMsgID(dataset, id string, part int) string {
	return "records/" + dataset + "/" + id + "/" + strconv.Itoa(part)
}

// ChunkMsgID is the id of the event of chunk seq of dataset.
func ChunkMsgID(dataset string, seq uint64) string {
	return "chunk/" + dataset + "/" + strconv.FormatUint(seq, 10)
}

// RewriteMsgID is the id of the event of chunk seq of dataset written
// again as the file of digest sha256.
func RewriteMsgID(dataset string, seq uint64, sha256 string) string {
	return "rewrite/" + dataset + "/" + strconv.FormatUint(seq, 10) + "/" + sha256
}

// DeadLetterMsgID is the id of the dead letter stage published for the
// message at stream sequence seq of subject.
func DeadLetterMsgID(stage, subject string, seq uint64) string {
	return "dlq/" + stage + "/" + subject + "/" + strconv.FormatUint(seq, 10)
}

// ReplayMsgID is the id a replay of dead letter seq publishes its message
// with: a replay repeated within the window publishes nothing twice.
func ReplayMsgID(seq uint64) string { return "dlq-replay/" + strconv.FormatUint(seq, 10) }

// RebuildMsgID is the id of the rebuild of the source at stream sequence
// seq into dataset into.
func RebuildMsgID(into string, seq uint64) string {
	return "rebuild/" + into + "/" + strconv.FormatUint(seq, 10)
}
