package postgres

import (
	"context"
	"fmt"
	"net/url"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaName is what CreateSchema and DropSchema accept: the name goes into
// DDL, which takes no parameters, so it must be a plain identifier.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateSchema makes an empty schema on the server named by databaseURL and
// returns a URL whose connections use it (search_path name, then public, for
// btree_gist). The simulator and the tests give each run its own schema
// this way, so runs side by side never see each other's rows.
func CreateSchema(ctx context.Context, databaseURL, name string) (string, error) {
	if !schemaName.MatchString(name) {
		return "", fmt.Errorf("postgres: schema name %q is not a plain identifier", name)
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("postgres: database url: %w", err)
	}
	if err := adminExec(ctx, databaseURL, `CREATE SCHEMA `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create schema %s: %w", name, err)
	}
	q := u.Query()
	q.Set("search_path", name+",public")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// DropSchema removes a schema made by CreateSchema, with everything in it.
func DropSchema(ctx context.Context, databaseURL, name string) error {
	if !schemaName.MatchString(name) {
		return fmt.Errorf("postgres: schema name %q is not a plain identifier", name)
	}
	if err := adminExec(ctx, databaseURL, `DROP SCHEMA `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
		return fmt.Errorf("drop schema %s: %w", name, err)
	}
	return nil
}

func adminExec(ctx context.Context, databaseURL, sql string) error {
	admin, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.Exec(ctx, sql)
	return err
}
