package objects

import "encoding/base64"

// The layout of a JetStream object store, as nats.go and nats-server lay it
// out: trainfeed writes (Store) and reads (the transform stage's body
// reader) objects through their stream, so this is the one place that
// knows it.

// StreamName returns the name of the stream that holds bucket.
func StreamName(bucket string) string { return "OBJ_" + bucket }

// ChunkSubject returns the subject of the chunks of the object whose info
// names nuid.
func ChunkSubject(bucket, nuid string) string { return "$O." + bucket + ".C." + nuid }

// MetaSubject returns the subject of the info of the object called name.
func MetaSubject(bucket, name string) string {
	return "$O." + bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}
