/*
 * offsets.h - which Kafka offset may be stored, per partition.
 *
 * A partition's offset may only move past a message once that message is
 * settled (recorded, known duplicate, or confirmed in the dead-letter
 * topic). Messages settle out of order (a lock held elsewhere, a DLQ ack
 * that arrives late), so each partition keeps the offsets it handed out, in
 * order, and the storable offset is one past the highest CONTIGUOUS settled
 * one. An unsettled message blocks its partition, never the others.
 *
 * "Contiguous" is in delivery order, not offset + 1: compaction and
 * transaction markers leave gaps in Kafka offsets.
 *
 * Only partitions assigned to us are tracked. librdkafka 2.0.2's batch API
 * may return messages of a partition after its revoke callback ran; tracked,
 * they would make the same offsets fetched again after a new assignment
 * look delivered twice, and their settles would move the offset past
 * messages never read. So a message of a partition not ours is refused, and
 * an assignment starts the partition afresh.
 *
 *   o = offsets_new();
 *   offsets_assign(o, part)         the partition is ours, from scratch
 *   offsets_track(o, part, off)     a message was polled (0; -1 when it is
 *                                   not after the last one, a redelivery, or
 *                                   its partition is not ours: drop it)
 *   offsets_settle(o, part, off)    it is settled
 *   offsets_take(o, part, &next)    1 and the offset to store when it moved
 *   offsets_revoke(o, part)         forget the partition (it was taken away)
 *   offsets_pending(o, part)        tracked but not yet settled
 *   offsets_partition_count(o)      one past the highest partition seen: the
 *                                   ones to visit are 0..count-1
 */
#ifndef TADAK_OFFSETS_H
#define TADAK_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

struct offsets;

struct offsets *offsets_new(void);
void offsets_free(struct offsets *o);
int offsets_track(struct offsets *o, int32_t partition, int64_t offset);
void offsets_settle(struct offsets *o, int32_t partition, int64_t offset);
int offsets_take(struct offsets *o, int32_t partition, int64_t *next);
void offsets_assign(struct offsets *o, int32_t partition);
void offsets_revoke(struct offsets *o, int32_t partition);
size_t offsets_pending(const struct offsets *o, int32_t partition);
int32_t offsets_partition_count(const struct offsets *o);

#endif
