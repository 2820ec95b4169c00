/*
 * BIP340 batch verification for kiln, built on libsecp256k1's internal field,
 * group and multi-scalar-multiplication code (the copy that secp256k1-sys
 * vendors and links into every kiln binary; build.rs points the compiler at
 * it).
 *
 * Why this file exists: libsecp256k1 exports one-by-one Schnorr verification
 * only. Its multi-scalar multiplication (Strauss below ~88 points, Pippenger
 * above) is internal, so the batch equation is assembled here and handed to
 * it. Everything below the equation (field arithmetic, square roots,
 * endomorphism split, bucket method) is libsecp256k1's own; only the batch
 * logic is kiln's.
 *
 * The check, for items i = 0..n-1 with signature (r_i, s_i), public key P_i
 * and challenge e_i = H_BIP0340/challenge(r_i || x(P_i) || m_i):
 *
 *     (-sum a_i s_i) G + sum a_i R_i + sum (a_i e_i) P_i  ==  infinity
 *
 * where R_i is the point with x = r_i and even y, a_0 = 1 and a_1.. are
 * 128-bit randomizers derived by hashing every item of the batch. A batch that
 * holds an invalid signature passes with probability about 2^-128; as
 * the randomizers depend on every byte of the batch, an attacker cannot pick
 * items that cancel. One-by-one verification accepts exactly the same set
 * (BIP340's "batch verification" section), so a failed batch only says
 * "something here is bad": the caller finds which by verifying one by one.
 *
 * Only the static functions of the included headers are used; the tables of
 * multiples of G are the extern ones secp256k1-sys already compiled.
 */

#include <stdlib.h>
#include <string.h>

#include "assumptions.h"
#include "util.h"
#include "field_impl.h"
#include "scalar_impl.h"
#include "group_impl.h"
#include "ecmult_impl.h"
#include "hash_impl.h"
#include "int128_impl.h"
#include "scratch_impl.h"

/* secp256k1-sys renames every symbol with its version prefix; one macro keeps
 * the code below readable. build.rs passes the prefix, read from the `links`
 * key of the secp256k1-sys it compiles against, so a version change cannot
 * leave this file naming the wrong symbols. */
#ifndef KILN_SECP_PREFIX
#error "build.rs must define KILN_SECP_PREFIX (secp256k1-sys's symbol prefix)"
#endif
#define KILN_CAT2(a, b) a##b
#define KILN_CAT(a, b) KILN_CAT2(a, b)
#define S(name) KILN_CAT(KILN_SECP_PREFIX, name)

/* The scratch space is filled by hand (secp256k1-sys does not ship its
 * constructor). It must be exactly the four fields set below; a new field
 * fails the build here rather than being left uninitialized. */
typedef char kiln_scratch_layout_is_known[sizeof(S(scratch)) == 8 + sizeof(void *) + 2 * sizeof(size_t) ? 1 : -1];

/* The key's internal form is copied as a ge_storage: that holds where the
 * storage type is 64 bytes (64-bit limbs), as on every target kiln builds for. */
typedef char kiln_ge_storage_is_64_bytes[sizeof(S(ge_storage)) == 64 ? 1 : -1];

/** One signature to check. `xonly64` is the 64-byte internal form of a parsed
 *  x-only key (secp256k1_xonly_pubkey.data), so no key is parsed twice. */
typedef struct {
    const unsigned char *sig64;
    const unsigned char *msg;
    size_t msglen;
    const unsigned char *xonly64;
} kiln_schnorr_item;

typedef struct {
    S(ge) *points;
    S(scalar) *scalars;
} batch_terms;

static int batch_term(S(scalar) *sc, S(ge) *pt, size_t idx, void *data) {
    const batch_terms *t = (const batch_terms *)data;
    *sc = t->scalars[idx];
    *pt = t->points[idx];
    return 1;
}

/* Only reached on misuse of the scratch space, which is sized here. */
static void ignore_error(const char *text, void *data) {
    (void)text;
    (void)data;
}

/* SHA256(tag) || SHA256(tag) absorbed; BIP340's tagged-hash construction. */
static void tagged(S(sha256) *sha, const char *tag) {
    S(sha256_initialize_tagged)(sha, (const unsigned char *)tag, strlen(tag));
}

static void le64(unsigned char out[8], uint64_t v) {
    int k;
    for (k = 0; k < 8; k++) out[k] = (unsigned char)(v >> (8 * k));
}

/**
 * Returns 1 when every item verifies (with overwhelming probability), 0 when
 * at least one item is invalid or malformed, -1 when memory could not be
 * had. On 0 or -1 the caller verifies one by one to name the bad items.
 */
int kiln_schnorr_batch_verify(const kiln_schnorr_item *items, size_t n) {
    const S(callback) cb = {ignore_error, NULL};
    S(sha256) seed_hash, challenge_proto, h;
    S(scalar) g_scalar, a, e, s, t;
    S(gej) sum;
    batch_terms terms;
    S(scratch) scratch;
    unsigned char seed[32], buf[32], len8[8];
    size_t i, npoints = 2 * n + 1, scratch_size;
    int result = 0, overflow;

    if (n == 0) return 1;
    terms.points = (S(ge) *)malloc(npoints * sizeof(S(ge)));
    terms.scalars = (S(scalar) *)malloc(npoints * sizeof(S(scalar)));
    /* Room for whichever algorithm ecmult_multi_var picks (Strauss below
     * ECMULT_PIPPENGER_THRESHOLD points, Pippenger above), in one pass. */
    scratch_size = S(pippenger_scratch_size)(npoints, S(pippenger_bucket_window)(npoints))
        + PIPPENGER_SCRATCH_OBJECTS * ALIGNMENT;
    if (npoints < ECMULT_PIPPENGER_THRESHOLD) {
        size_t strauss = S(strauss_scratch_size)(npoints) + STRAUSS_SCRATCH_OBJECTS * ALIGNMENT;
        if (strauss > scratch_size) scratch_size = strauss;
    }
    memset(&scratch, 0, sizeof(scratch));
    memcpy(scratch.magic, "scratch", 8);
    scratch.data = malloc(scratch_size);
    scratch.alloc_size = 0;
    scratch.max_size = scratch_size;
    if (terms.points == NULL || terms.scalars == NULL || scratch.data == NULL) {
        result = -1;
        goto done;
    }

    /* Pass 1: decode, lift R, load P, challenge e, and absorb everything into
     * the randomizer seed. points[2i] = R_i, points[2i+1] = P_i; scalars[2i]
     * holds s_i and scalars[2i+1] holds e_i until pass 2. */
    tagged(&seed_hash, "kiln/BIP340/batch");
    tagged(&challenge_proto, "BIP0340/challenge");
    for (i = 0; i < n; i++) {
        const kiln_schnorr_item *it = &items[i];
        S(fe) rx;
        S(ge_storage) pk_storage;
        unsigned char pkx[32];

        if (!S(fe_set_b32_limit)(&rx, it->sig64)) goto done;
        if (!S(ge_set_xo_var)(&terms.points[2 * i], &rx, 0)) goto done;
        S(scalar_set_b32)(&terms.scalars[2 * i], it->sig64 + 32, &overflow);
        if (overflow) goto done;
        memcpy(&pk_storage, it->xonly64, sizeof(pk_storage));
        S(ge_from_storage)(&terms.points[2 * i + 1], &pk_storage);
        S(fe_normalize_var)(&terms.points[2 * i + 1].x);
        S(fe_get_b32)(pkx, &terms.points[2 * i + 1].x);

        h = challenge_proto;
        S(sha256_write)(&h, it->sig64, 32);
        S(sha256_write)(&h, pkx, 32);
        S(sha256_write)(&h, it->msg, it->msglen);
        S(sha256_finalize)(&h, buf);
        S(scalar_set_b32)(&terms.scalars[2 * i + 1], buf, NULL);

        le64(len8, (uint64_t)it->msglen);
        S(sha256_write)(&seed_hash, it->sig64, 64);
        S(sha256_write)(&seed_hash, pkx, 32);
        S(sha256_write)(&seed_hash, len8, 8);
        S(sha256_write)(&seed_hash, it->msg, it->msglen);
    }
    S(sha256_finalize)(&seed_hash, seed);

    /* Pass 2: randomize. R_i gets a_i, P_i gets a_i e_i, G gets -sum a_i s_i. */
    S(scalar_set_int)(&g_scalar, 0);
    for (i = 0; i < n; i++) {
        if (i == 0) {
            S(scalar_set_int)(&a, 1);
        } else {
            S(sha256_initialize)(&h);
            S(sha256_write)(&h, seed, 32);
            le64(len8, (uint64_t)i);
            S(sha256_write)(&h, len8, 8);
            S(sha256_finalize)(&h, buf);
            /* 128-bit randomizers: the soundness bound stays 2^-128, and a
             * scalar below 2^128 leaves the endomorphism split's second half
             * zero, which Pippenger skips: R_i's terms cost half. Odd, so
             * never zero. */
            memset(buf, 0, 16);
            buf[31] |= 1;
            S(scalar_set_b32)(&a, buf, NULL);
        }
        s = terms.scalars[2 * i];
        e = terms.scalars[2 * i + 1];
        S(scalar_mul)(&t, &a, &s);
        S(scalar_add)(&g_scalar, &g_scalar, &t);
        terms.scalars[2 * i] = a;
        S(scalar_mul)(&terms.scalars[2 * i + 1], &a, &e);
    }
    S(scalar_negate)(&g_scalar, &g_scalar);
    /* G is one more explicit term rather than ecmult's G argument: then the
     * precomputed G tables, whose size secp256k1-sys fixes at build time
     * (ECMULT_WINDOW_SIZE), are never read, and no setting of it there can
     * make this file read past them. It costs one point of 2n + 1. */
    terms.points[2 * n] = S(ge_const_g);
    terms.scalars[2 * n] = g_scalar;

    if (!S(ecmult_multi_var)(&cb, &scratch, &sum, NULL, batch_term, &terms, npoints)) {
        result = -1;
        goto done;
    }
    result = S(gej_is_infinity)(&sum) ? 1 : 0;

done:
    free(terms.points);
    free(terms.scalars);
    free(scratch.data);
    return result;
}
