/* Blind indexes in bulk: HMAC-SHA256 (RFC 2104) of each line of a block, under one key, in one call.
 *
 * phoneops.numbers.crypto.blind_index_block is the contract and the pure-Python path; this module only
 * makes it fast (docs/operations.md, "Blind indexes"). Python prepares the key's 64-byte block (the key,
 * hashed first when longer than 64 bytes, padded with zeros) and checks the block's shape; here the inner
 * and outer keyed SHA-256 states are computed once, then copied for every line. SHA-256 itself is
 * OpenSSL's (libcrypto), which uses the CPU's SHA extensions where it has them. The GIL is released while
 * hashing, so threads of the calling process keep running.
 *
 * The low-level SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP, whose context copy allocates
 * (the provider duplicates its state) and costs more than the hash of a short line. They are still part of
 * OpenSSL 3's API; when a libcrypto without them is met, the build of this optional module fails and the
 * pure-Python path is used (crypto.py says which one runs: `blind_index_backend`).
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#define BLOCK 64

static PyObject *
hmac_sha256_lines(PyObject *module, PyObject *args)
{
    Py_buffer key, data;
    if (!PyArg_ParseTuple(args, "y*y*:hmac_sha256_lines", &key, &data))
        return NULL;
    PyObject *result = NULL;
    if (key.len != BLOCK) {
        PyErr_SetString(PyExc_ValueError, "the key block must be 64 bytes (the key padded with zeros)");
        goto done;
    }
    if (data.len == 0) {
        result = PyBytes_FromStringAndSize(NULL, 0);
        goto done;
    }
    const unsigned char *in = data.buf;
    Py_ssize_t lines = 1;
    for (Py_ssize_t i = 0; i < data.len; i++)
        lines += in[i] == '\n';
    result = PyBytes_FromStringAndSize(NULL, lines * SHA256_DIGEST_LENGTH);
    if (result == NULL)
        goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);

    unsigned char pad[BLOCK];
    const unsigned char *k = key.buf;
    SHA256_CTX inner, outer, ctx;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    ok &= SHA256_Init(&inner) && SHA256_Update(&inner, pad, BLOCK);
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    ok &= SHA256_Init(&outer) && SHA256_Update(&outer, pad, BLOCK);
    const unsigned char *line = in, *end = in + data.len;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    while (ok) {
        const unsigned char *stop = memchr(line, '\n', (size_t)(end - line));
        if (stop == NULL)
            stop = end;
        ctx = inner;
        ok &= SHA256_Update(&ctx, line, (size_t)(stop - line)) && SHA256_Final(digest, &ctx);
        ctx = outer;
        ok &= SHA256_Update(&ctx, digest, sizeof digest) && SHA256_Final(out, &ctx);
        out += SHA256_DIGEST_LENGTH;
        if (stop == end)
            break;
        line = stop + 1;
    }
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    Py_END_ALLOW_THREADS
    if (!ok) {
        Py_CLEAR(result);
        PyErr_SetString(PyExc_RuntimeError, "libcrypto's SHA-256 failed");
    }
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"hmac_sha256_lines", hmac_sha256_lines, METH_VARARGS,
     "hmac_sha256_lines(key_block, data) -> bytes\n\n"
     "HMAC-SHA256 of each line of `data` (split on b'\\n') under the 64-byte key block, the 32-byte digests "
     "concatenated in order; b'' for empty data."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_blindhash",
    "Bulk HMAC-SHA256 for blind indexes (phoneops.numbers.crypto).", -1, methods,
};

PyMODINIT_FUNC
PyInit__blindhash(void)
{
    return PyModule_Create(&module);
}
