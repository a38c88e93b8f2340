package main

import (
	"net/url"

	"github.com/parkgate/parkgate/cloud/relay"
)

// mqttClient is the broker configuration of one of this replica's MQTT
// clients. When the broker URLs carry a password (ssl://user:pass@host:8883)
// the client logs in with it as clientID, not as the URL's user: the shipped
// broker makes a client's id its username (use_username_as_clientid), so the
// relay and the ingest of one replica, or two replicas, sharing one user
// would take each other's session. Its acl names the users
// parkcloud-relay-{replica} and parkcloud-ingest-{replica}. URLs without a
// password (the dev broker) are used as they are.
func mqttClient(brokers []string, clientID string) relay.MQTTConfig {
	cfg := relay.MQTTConfig{ClientID: clientID}
	for _, b := range brokers {
		if u, err := url.Parse(b); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok {
				if cfg.Password == "" {
					cfg.Username, cfg.Password = clientID, pw
				}
				// paho prefers a URL's user info to the options'.
				u.User = nil
				b = u.String()
			}
		}
		cfg.Brokers = append(cfg.Brokers, b)
	}
	return cfg
}
