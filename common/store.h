/*
 * store.h - the PostgreSQL side: the schema and the batch insert.
 *
 * A batch of votes goes in as ONE statement (so one transaction):
 *
 *   INSERT INTO votes (token, user_id, candidate_id, event_id, kafka_partition, kafka_offset)
 *   SELECT * FROM unnest($1::text[], ..., $6::bigint[])
 *   ON CONFLICT (token) DO NOTHING RETURNING token
 *
 * with the six columns passed as array parameters (never spliced into SQL).
 * The UNIQUE token is the final word on "one row per vote": a row whose
 * token comes back was inserted, any other was already there.
 *
 * The schema (sql/schema.sql) is compiled in as store_schema() and applied
 * under a transaction-scoped advisory lock, so consumers starting together
 * do not race on CREATE ... IF NOT EXISTS. A unit test checks the copy
 * against sql/schema.sql byte for byte.
 *
 * The connection is opened lazily and re-opened after it breaks, so a
 * PostgreSQL outage is a failed call (retry later), not a dead handle.
 *
 *   s = store_new(url);
 *   store_migrate(s, err, sizeof err);
 *   store_insert_batch(s, rows, n, err, sizeof err);  rows[i].inserted set
 */
#ifndef TADAK_STORE_H
#define TADAK_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store_row {
    const char *token; /* unique within one batch */
    int64_t user_id;
    int64_t candidate_id;
    const char *event_id;
    int32_t partition;
    int64_t offset;
    int inserted; /* out: 1 when this call inserted the row, 0 when the token existed */
};

struct store;

struct store *store_new(const char *url);
void store_free(struct store *s);
const char *store_schema(void);
int store_migrate(struct store *s, char *errstr, size_t errsize);
int store_insert_batch(struct store *s, struct store_row *rows, size_t n, char *errstr,
                       size_t errsize);

#endif
