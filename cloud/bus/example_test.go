package bus_test

import (
	"fmt"

	"github.com/parkgate/parkgate/cloud/bus"
)

func ExampleParseBackend() {
	for _, s := range []string{"", "Kafka", "rabbitmq"} {
		b, err := bus.ParseBackend(s)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(b)
	}
	// Output:
	// postgres
	// kafka
	// error: bus: unknown backend "rabbitmq" (want "postgres" or "kafka")
}
