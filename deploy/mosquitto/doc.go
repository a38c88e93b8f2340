// Package mosquitto holds the shipped broker configuration (parkgate.conf
// and acl) and the test that runs acl-test.sh, so `make test` proves on every
// run that it keeps each lot to its own topics and binds client ids to
// credentials, and a change to either that breaks it fails the build rather
// than a deployment. Its little code (Config, WritePasswords) lets a private
// broker run those very files with its paths moved to a temporary
// directory: the fleet run (sim/fleet) puts the production ACL and a
// thousand per-lot users under load that way.
package mosquitto
