/*
 * A small stream-style host of the C ABI: a stream of (user, page) click events keeps a
 * per-user click count (merge into a u64-add table) and a per-user list of pages (list
 * appends), then a prefix scan prints every user's count and recent pages.
 *
 *   cargo build --release -p strata-ffi
 *   cc -std=c11 -O2 -I ffi/include ffi/examples/keyed_counts.c \
 *      target/release/libstrata_ffi.a -lpthread -ldl -lm -o keyed_counts
 *   ./keyed_counts /tmp/keyed-counts-db
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata.h"

static int check(strata_status s, char *err, const char *what) {
  if (s == STRATA_OK) return 0;
  fprintf(stderr, "%s: status %d: %s\n", what, (int)s, err ? err : "");
  strata_free(err);
  exit(1);
}
#define TRY(call, what)  \
  do {                   \
    char *err = NULL;    \
    check(call, err, what); \
  } while (0)

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "keyed-counts-db";
  if (strata_abi_version() != STRATA_ABI_VERSION) {
    fprintf(stderr, "header ABI %d, library ABI %u\n", STRATA_ABI_VERSION, strata_abi_version());
    return 1;
  }
  strata_options *opts = NULL;
  TRY(strata_options_create(&opts, &err), "options");
  TRY(strata_options_set_memory_budget(opts, 64u << 20, &err), "budget");
  strata_db *db = NULL;
  TRY(strata_db_open(path, opts, &db, &err), "open");

  strata_table_options *to = NULL;
  strata_table *counts = NULL, *pages = NULL;
  TRY(strata_table_options_create(&to, &err), "table options");
  TRY(strata_table_options_set_merge(to, STRATA_MERGE_U64_ADD, 0, NULL, &err), "merge kind");
  TRY(strata_db_create_table(db, "counts", to, &counts, &err), "counts table");
  TRY(strata_table_options_set_merge(to, STRATA_MERGE_APPEND_DELIMITED, ',', NULL, &err), "merge kind");
  TRY(strata_db_create_table(db, "pages", to, &pages, &err), "pages table");
  strata_table_options_destroy(to);

  /* the stream: 100000 clicks of 50 users over 20 pages, deterministic */
  uint32_t x = 12345;
  const int events = 100000;
  for (int i = 0; i < events; i++) {
    x = x * 1103515245u + 12345u;
    char user[32], page[32];
    int ul = snprintf(user, sizeof user, "user-%02u", (x >> 8) % 50);
    int pl = snprintf(page, sizeof page, "page-%u", (x >> 16) % 20);
    uint64_t one = 1;
    TRY(strata_merge(db, counts, (const uint8_t *)user, ul, (const uint8_t *)&one, 8, &err), "count");
    if (i >= events - 200) /* keep the last pages only */
      TRY(strata_merge(db, pages, (const uint8_t *)user, ul, (const uint8_t *)page, pl, &err), "page");
  }
  TRY(strata_flush(db, &err), "flush");

  /* prefix scan over every user */
  strata_iterator *it = NULL;
  TRY(strata_iter_prefix(db, counts, (const uint8_t *)"user-", 5, &it, &err), "scan");
  uint64_t total = 0;
  int users = 0;
  char *err = NULL;
  strata_status s;
  while ((s = strata_iter_next(it, &err)) == STRATA_OK) {
    size_t kl = 0, vl = 0;
    const uint8_t *k = strata_iter_key(it, &kl);
    const uint8_t *v = strata_iter_value(it, &vl);
    uint64_t n = 0;
    memcpy(&n, v, vl < 8 ? vl : 8);
    total += n;
    users++;
    uint8_t *recent = NULL;
    size_t rl = 0;
    strata_status g = strata_get(db, pages, k, kl, &recent, &rl, &err);
    if (users <= 5)
      printf("%.*s: %llu clicks, recent pages: %.*s\n", (int)kl, (const char *)k,
             (unsigned long long)n, g == STRATA_OK ? (int)rl : 1, g == STRATA_OK ? (const char *)recent : "-");
    if (g == STRATA_OK) strata_free(recent);
  }
  if (s != STRATA_NOT_FOUND) check(s, err, "iterate");
  strata_iter_destroy(it);
  printf("%d users, %llu clicks in total (%d events)\n", users, (unsigned long long)total, events);

  strata_table_destroy(counts);
  strata_table_destroy(pages);
  TRY(strata_db_close(db, &err), "close");
  strata_db_destroy(db);
  strata_options_destroy(opts);
  return total == (uint64_t)events && users == 50 ? 0 : 1;
}
