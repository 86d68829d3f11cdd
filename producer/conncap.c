/*
 * conncap.c - connections per client address. See conncap.h.
 */
#include "conncap.h"
#include "clientaddr.h"
#include "util.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    unsigned char key[CLIENTADDR_KEY_LEN];
    unsigned int count;
    struct entry *next;
};

struct conncap {
    unsigned int per_address;
    conncap_exempt_fn exempt;
    void *arg;
    pthread_mutex_t lock;
    struct entry *buckets[CONNCAP_BUCKETS];
};

/* The whole address (IPv4-mapped as IPv4): -1 for a peer that is no IP client. */
static int key_of(const struct sockaddr *peer, unsigned char key[CLIENTADDR_KEY_LEN])
{
    struct clientaddr ca;

    if (clientaddr_resolve(peer, NULL, NULL, 0, &ca) != 0)
        return -1;
    clientaddr_key(&ca, 128, key);
    return 0;
}

/* Under the lock: the entry of key, or where its link is. */
static struct entry **find(struct conncap *cc, const unsigned char *key)
{
    struct entry **e = &cc->buckets[util_fnv1a64(key, CLIENTADDR_KEY_LEN) % CONNCAP_BUCKETS];

    while (*e && memcmp((*e)->key, key, CLIENTADDR_KEY_LEN) != 0)
        e = &(*e)->next;
    return e;
}

struct conncap *conncap_new(unsigned int per_address, conncap_exempt_fn exempt, void *arg)
{
    struct conncap *cc = xcalloc(1, sizeof(*cc));

    cc->per_address = per_address;
    cc->exempt = exempt;
    cc->arg = arg;
    pthread_mutex_init(&cc->lock, NULL);
    return cc;
}

void conncap_free(struct conncap *cc)
{
    if (!cc)
        return;
    for (size_t i = 0; i < CONNCAP_BUCKETS; i++)
        while (cc->buckets[i]) {
            struct entry *next = cc->buckets[i]->next;
            free(cc->buckets[i]);
            cc->buckets[i] = next;
        }
    pthread_mutex_destroy(&cc->lock);
    free(cc);
}

int conncap_open(struct conncap *cc, const struct sockaddr *peer)
{
    unsigned char key[CLIENTADDR_KEY_LEN];
    struct entry **e;
    int ok;

    if (key_of(peer, key) != 0 || (cc->exempt && cc->exempt(cc->arg, peer)))
        return 1;
    pthread_mutex_lock(&cc->lock);
    e = find(cc, key);
    if (!*e) {
        *e = xcalloc(1, sizeof(**e));
        memcpy((*e)->key, key, sizeof(key));
    }
    ok = ++(*e)->count <= cc->per_address; /* counted either way: its close uncounts it */
    pthread_mutex_unlock(&cc->lock);
    return ok;
}

void conncap_close(struct conncap *cc, const struct sockaddr *peer)
{
    unsigned char key[CLIENTADDR_KEY_LEN];
    struct entry **e, *gone = NULL;

    if (key_of(peer, key) != 0 || (cc->exempt && cc->exempt(cc->arg, peer)))
        return;
    pthread_mutex_lock(&cc->lock);
    e = find(cc, key);
    if (*e && --(*e)->count == 0) {
        gone = *e;
        *e = gone->next;
    }
    pthread_mutex_unlock(&cc->lock);
    free(gone);
}

unsigned int conncap_count(struct conncap *cc, const struct sockaddr *peer)
{
    unsigned char key[CLIENTADDR_KEY_LEN];
    unsigned int n = 0;
    struct entry **e;

    if (key_of(peer, key) != 0)
        return 0;
    pthread_mutex_lock(&cc->lock);
    e = find(cc, key);
    if (*e)
        n = (*e)->count;
    pthread_mutex_unlock(&cc->lock);
    return n;
}
