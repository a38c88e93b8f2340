// Package mosquitto holds no code: it is where the test lives that runs
// acl-test.sh, so `make test` proves on every run that the shipped broker
// configuration (parkgate.conf and acl) keeps each lot to its own topics and
// binds client ids to credentials, and a change to either that breaks it
// fails the build rather than a deployment.
package mosquitto
