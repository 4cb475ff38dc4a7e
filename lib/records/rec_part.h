/*
 * rec_part.h: one output stream written by several ranks under mpirun.
 * Each rank writes its share of the records to a part of its own, noting
 * each one's input ordinal; at the end rank 0 gathers the parts and
 * writes the records to stdout in ordinal order, as one process writes
 * them.  Without MPI (or with one rank) the part is stdout itself.
 */
#ifndef PREFPIPE_REC_PART_H
#define PREFPIPE_REC_PART_H

#include <stdint.h>

struct rec_part;
struct rec_writer;

/* flags: the tool's output flags (REC_JSON, REC_ZSTD, REC_AUTO). */
struct rec_part *rec_part_open(int flags);
/* Where this rank's records go, in increasing ordinal order. */
struct rec_writer *rec_part_writer(struct rec_part *p);
/* The input ordinal of the record just written (a no-op on one rank). */
void rec_part_note(struct rec_part *p, uint64_t ordinal);
/* Close; the union to stdout by rank 0.  Collective: every rank calls. */
void rec_part_close(struct rec_part *p);

#endif
