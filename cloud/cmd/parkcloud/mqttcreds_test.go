package main

import (
	"reflect"
	"testing"

	"github.com/parkgate/parkgate/cloud/relay"
)

func TestMQTTClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		brokers []string
		want    relay.MQTTConfig
	}{
		{"DevBroker", []string{"tcp://127.0.0.1:1883"},
			relay.MQTTConfig{ClientID: "parkcloud-relay-1", Brokers: []string{"tcp://127.0.0.1:1883"}}},
		{"PasswordLogsInAsClientID", []string{"ssl://parkcloud:s3cret@a.example:8883", "ssl://parkcloud:s3cret@b.example:8883"},
			relay.MQTTConfig{ClientID: "parkcloud-relay-1", Username: "parkcloud-relay-1", Password: "s3cret",
				Brokers: []string{"ssl://a.example:8883", "ssl://b.example:8883"}}},
		{"UserWithoutPasswordKept", []string{"tcp://someone@127.0.0.1:1883"},
			relay.MQTTConfig{ClientID: "parkcloud-relay-1", Brokers: []string{"tcp://someone@127.0.0.1:1883"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := mqttClient(tt.brokers, "parkcloud-relay-1"); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
