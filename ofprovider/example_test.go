package ofprovider_test

import (
	"context"
	"fmt"
	"log"

	"github.com/d8da9184/opstate"
	"github.com/d8da9184/opstate/ofprovider"
	"github.com/open-feature/go-sdk/openfeature"
)

// Example sets the provider over the "flags" namespace of a Store and
// reads flags through an OpenFeature client, as an application does.
func Example() {
	store, err := opstate.NewStore(":memory:") // a file path in production, or pgstate.Open
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Set("flags", "dark_mode", "true"); err != nil {
		log.Fatal(err)
	}

	if err := openfeature.SetProviderAndWait(ofprovider.New(store, "flags")); err != nil {
		log.Fatal(err)
	}
	defer openfeature.Shutdown() // stops the provider's watch; before store.Close
	client := openfeature.NewDefaultClient()

	ctx := context.Background()
	on, err := client.BooleanValue(ctx, "dark_mode", false, openfeature.EvaluationContext{})
	fmt.Println(on, err)
	d, err := client.StringValueDetails(ctx, "greeting", "hello", openfeature.EvaluationContext{})
	fmt.Println(d.Value, d.ErrorCode, err != nil)
	// Output:
	// true <nil>
	// hello FLAG_NOT_FOUND true
}
