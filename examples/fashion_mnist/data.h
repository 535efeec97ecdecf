/* Fashion-MNIST from the IDX files of Debian's dataset-fashion-mnist package. */
#ifndef FASHION_MNIST_DATA_H
#define FASHION_MNIST_DATA_H

#include <stddef.h>
#include <stdint.h>

#define FM_ROWS 28
#define FM_COLS 28
#define FM_PIXELS (FM_ROWS * FM_COLS)
#define FM_CLASSES 10

/* Where the Debian package installs the files. */
#define FM_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

/* One split: count images of FM_PIXELS bytes (row-major, 0..255) and their labels (0..9). */
typedef struct fm_split {
  size_t count;
  uint8_t* images;
  uint8_t* labels;
} fm_split;

/* Reads <dir>/<prefix>-images-idx3-ubyte[.gz] and <dir>/<prefix>-labels-idx1-ubyte[.gz]
 * (prefix "train" or "t10k"), gzip-compressed or not. On failure returns nonzero and writes a
 * message naming the file and what is wrong into err. */
int fm_load_split(const char* dir, const char* prefix, fm_split* out, char* err, size_t err_size);
void fm_free_split(fm_split* split);

/* Pixel value as the model sees it: scaled to [0, 1], then standardised with Fashion-MNIST's
 * training-set mean and standard deviation. */
void fm_normalize(const uint8_t* pixels, size_t count, float* out);

#endif
