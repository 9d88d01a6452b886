// Package faulttest holds trainfeed's fault tests: a real three-node
// nats-server cluster and the stage members as separate OS processes of the
// trainfeed binary, some of them killed with SIGKILL while the pipeline runs.
// The tests build both binaries in TestMain and are skipped under -short.
package faulttest
