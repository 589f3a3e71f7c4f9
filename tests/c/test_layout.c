/* The DLPack structs in dlshare.h have the DLPack ABI layout (x86-64 / aarch64 LP64). */
#include <stddef.h>
#include <stdio.h>

#include "dlshare.h"

#define ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), "sizeof(" #type ")")
#define ASSERT_OFFSET(type, field, offset) \
  _Static_assert(offsetof(type, field) == (offset), "offsetof(" #type ", " #field ")")

ASSERT_SIZE(DLDataType, 4);
ASSERT_OFFSET(DLDataType, code, 0);
ASSERT_OFFSET(DLDataType, bits, 1);
ASSERT_OFFSET(DLDataType, lanes, 2);

ASSERT_SIZE(DLDevice, 8);
ASSERT_OFFSET(DLDevice, device_type, 0);
ASSERT_OFFSET(DLDevice, device_id, 4);

ASSERT_SIZE(DLPackVersion, 8);
ASSERT_OFFSET(DLPackVersion, major, 0);
ASSERT_OFFSET(DLPackVersion, minor, 4);

ASSERT_SIZE(DLTensor, 48);
ASSERT_OFFSET(DLTensor, data, 0);
ASSERT_OFFSET(DLTensor, device, 8);
ASSERT_OFFSET(DLTensor, ndim, 16);
ASSERT_OFFSET(DLTensor, dtype, 20);
ASSERT_OFFSET(DLTensor, shape, 24);
ASSERT_OFFSET(DLTensor, strides, 32);
ASSERT_OFFSET(DLTensor, byte_offset, 40);

ASSERT_SIZE(DLManagedTensor, 64);
ASSERT_OFFSET(DLManagedTensor, dl_tensor, 0);
ASSERT_OFFSET(DLManagedTensor, manager_ctx, 48);
ASSERT_OFFSET(DLManagedTensor, deleter, 56);

ASSERT_SIZE(DLManagedTensorVersioned, 80);
ASSERT_OFFSET(DLManagedTensorVersioned, version, 0);
ASSERT_OFFSET(DLManagedTensorVersioned, manager_ctx, 8);
ASSERT_OFFSET(DLManagedTensorVersioned, deleter, 16);
ASSERT_OFFSET(DLManagedTensorVersioned, flags, 24);
ASSERT_OFFSET(DLManagedTensorVersioned, dl_tensor, 32);

_Static_assert(DLPACK_MAJOR_VERSION == 1, "DLPack major version");
_Static_assert(DLPACK_FLAG_BITMASK_READ_ONLY == 1, "READ_ONLY flag bit");
_Static_assert(DLPACK_FLAG_BITMASK_IS_COPIED == 2, "IS_COPIED flag bit");
_Static_assert(DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED == 4, "IS_SUBBYTE_TYPE_PADDED bit");

int main(void) {
  /* Everything is checked at compile time; reaching here means the layout matches. */
  printf("DLTensor %zu, DLManagedTensor %zu, DLManagedTensorVersioned %zu bytes: ABI layout ok\n",
         sizeof(DLTensor), sizeof(DLManagedTensor), sizeof(DLManagedTensorVersioned));
  return 0;
}
