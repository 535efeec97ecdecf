/* Reading Fashion-MNIST's IDX files (http://yann.lecun.com/exdb/mnist/ describes the format):
 * a big-endian header (magic 0x0000 08 <ndim>, then ndim 32-bit sizes) followed by the bytes.
 * zlib's gzread reads gzip-compressed and plain files alike. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Training-set statistics of the pixel values scaled to [0, 1]. */
#define FM_MEAN 0.2860f
#define FM_STD 0.3530f

/* Largest file we accept (the training images are 47 MB uncompressed). */
#define FM_MAX_BYTES ((size_t)64 << 20)

static void set_error(char* err, size_t err_size, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(err, err_size, fmt, args);
  va_end(args);
}

/* zlib's messages start with "<path>: "; drop it, the caller names the file. */
static const char* zlib_message(gzFile gz, const char* path, int* code) {
  const char* msg = gzerror(gz, code);
  const size_t n = strlen(path);
  if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
  return msg;
}

static int file_exists(const char* path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Finds <dir>/<name>.gz or <dir>/<name>; writes the path tried first when neither exists. */
static int find_file(const char* dir, const char* name, char* path, size_t path_size) {
  snprintf(path, path_size, "%s/%s.gz", dir, name);
  if (file_exists(path)) return 0;
  snprintf(path, path_size, "%s/%s", dir, name);
  if (file_exists(path)) return 0;
  snprintf(path, path_size, "%s/%s.gz", dir, name);
  return -1;
}

/* Reads the whole (decompressed) file. */
static int read_all(const char* path, uint8_t** data, size_t* size, char* err, size_t err_size) {
  gzFile gz;
  uint8_t* buf = NULL;
  size_t len = 0, cap = 0;
  errno = 0;
  gz = gzopen(path, "rb");
  if (!gz) {
    set_error(err, err_size, "%s: cannot open: %s", path,
              errno ? strerror(errno) : "out of memory");
    return -1;
  }
  for (;;) {
    int n;
    if (cap - len < (1u << 20)) {
      uint8_t* grown;
      cap = cap ? cap * 2 : (4u << 20);
      if (cap > FM_MAX_BYTES + (1u << 20)) cap = FM_MAX_BYTES + (1u << 20);
      if (cap - len == 0) {
        set_error(err, err_size, "%s: larger than %zu MB uncompressed; not a Fashion-MNIST file",
                  path, FM_MAX_BYTES >> 20);
        goto fail;
      }
      grown = (uint8_t*)realloc(buf, cap);
      if (!grown) {
        set_error(err, err_size, "%s: out of memory", path);
        goto fail;
      }
      buf = grown;
    }
    n = gzread(gz, buf + len, (unsigned)(cap - len));
    if (n < 0) {
      int code;
      const char* msg = zlib_message(gz, path, &code);
      set_error(err, err_size, "%s: damaged gzip data (%s) after %zu bytes", path, msg, len);
      goto fail;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  {
    /* gzread returns 0 both at a clean end and at a truncated stream; gzerror tells which. */
    int code;
    const char* msg = zlib_message(gz, path, &code);
    if (code != Z_OK) {
      set_error(err, err_size, "%s: damaged or truncated gzip data (%s) after %zu bytes", path, msg,
                len);
      goto fail;
    }
  }
  gzclose(gz);
  *data = buf;
  *size = len;
  return 0;
fail:
  gzclose(gz);
  free(buf);
  return -1;
}

static uint32_t be32(const uint8_t* p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Checks an IDX header of ubyte data with `ndim` dimensions; writes the sizes to dims and
 * returns the header length, or 0 with a message. */
static size_t parse_header(const char* path, const uint8_t* data, size_t size, unsigned ndim,
                           uint32_t* dims, char* err, size_t err_size) {
  const size_t header = 4 + 4 * (size_t)ndim;
  size_t payload = 1, expected, i;
  if (size < header) {
    set_error(err, err_size, "%s: %zu bytes, too short for an IDX header (%zu bytes)", path, size,
              header);
    return 0;
  }
  if (data[0] != 0 || data[1] != 0 || data[2] != 0x08 || data[3] != ndim) {
    set_error(err, err_size,
              "%s: not an IDX file of %u-dimensional unsigned bytes (magic %02x %02x %02x %02x, "
              "expected 00 00 08 %02x)",
              path, ndim, data[0], data[1], data[2], data[3], ndim);
    return 0;
  }
  for (i = 0; i < ndim; ++i) {
    dims[i] = be32(data + 4 + 4 * i);
    if (dims[i] != 0 && payload > FM_MAX_BYTES / dims[i]) {
      set_error(err, err_size, "%s: header sizes are implausibly large", path);
      return 0;
    }
    payload *= dims[i];
  }
  expected = header + payload;
  if (size < expected) {
    set_error(err, err_size, "%s: truncated: %zu bytes, the header announces %zu", path, size,
              expected);
    return 0;
  }
  if (size > expected) {
    set_error(err, err_size, "%s: %zu bytes after the data the header announces (%zu bytes)", path,
              size - expected, expected);
    return 0;
  }
  return header;
}

int fm_load_split(const char* dir, const char* prefix, fm_split* out, char* err, size_t err_size) {
  char images_name[64], labels_name[64], images_path[4096], labels_path[4096];
  uint8_t *images = NULL, *labels = NULL;
  size_t images_size = 0, labels_size = 0, images_header, labels_header, i;
  uint32_t image_dims[3], label_dims[1];

  memset(out, 0, sizeof *out);
  snprintf(images_name, sizeof images_name, "%s-images-idx3-ubyte", prefix);
  snprintf(labels_name, sizeof labels_name, "%s-labels-idx1-ubyte", prefix);
  if (find_file(dir, images_name, images_path, sizeof images_path)) {
    set_error(err, err_size, "%s: missing (nor is there an uncompressed %s/%s)", images_path, dir,
              images_name);
    return -1;
  }
  if (find_file(dir, labels_name, labels_path, sizeof labels_path)) {
    set_error(err, err_size, "%s: missing (nor is there an uncompressed %s/%s)", labels_path, dir,
              labels_name);
    return -1;
  }
  if (read_all(images_path, &images, &images_size, err, err_size)) return -1;
  if (read_all(labels_path, &labels, &labels_size, err, err_size)) goto fail;

  images_header = parse_header(images_path, images, images_size, 3, image_dims, err, err_size);
  if (!images_header) goto fail;
  if (image_dims[1] != FM_ROWS || image_dims[2] != FM_COLS) {
    set_error(err, err_size, "%s: images are %ux%u, expected %dx%d", images_path,
              (unsigned)image_dims[1], (unsigned)image_dims[2], FM_ROWS, FM_COLS);
    goto fail;
  }
  labels_header = parse_header(labels_path, labels, labels_size, 1, label_dims, err, err_size);
  if (!labels_header) goto fail;
  if (label_dims[0] != image_dims[0]) {
    set_error(err, err_size, "%s holds %u labels but %s holds %u images", labels_path,
              (unsigned)label_dims[0], images_path, (unsigned)image_dims[0]);
    goto fail;
  }
  if (image_dims[0] == 0) {
    set_error(err, err_size, "%s: holds no images", images_path);
    goto fail;
  }
  for (i = 0; i < label_dims[0]; ++i) {
    if (labels[labels_header + i] >= FM_CLASSES) {
      set_error(err, err_size, "%s: label %zu is %u, expected 0..%d", labels_path, i,
                (unsigned)labels[labels_header + i], FM_CLASSES - 1);
      goto fail;
    }
  }
  /* Drop the headers in place. */
  memmove(images, images + images_header, images_size - images_header);
  memmove(labels, labels + labels_header, labels_size - labels_header);
  out->count = image_dims[0];
  out->images = images;
  out->labels = labels;
  return 0;
fail:
  free(images);
  free(labels);
  return -1;
}

void fm_free_split(fm_split* split) {
  if (!split) return;
  free(split->images);
  free(split->labels);
  memset(split, 0, sizeof *split);
}

void fm_normalize(const uint8_t* pixels, size_t count, float* out) {
  size_t i;
  for (i = 0; i < count; ++i) out[i] = ((float)pixels[i] / 255.0f - FM_MEAN) / FM_STD;
}
