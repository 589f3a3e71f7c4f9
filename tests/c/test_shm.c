/* Shared-memory tensors across two processes, from C: the producer makes a tensor in shared
   memory, exports its description (dlshare_shm_export) and sends the fd with SCM_RIGHTS over a
   Unix socket to a consumer process that it started with exec (a fresh program: nothing is
   inherited but the socket). The consumer imports the description (dlshare_shm_import), checks
   the values, writes into the tensor, and the producer sees the write. Then bad descriptions: a
   closed fd, a pipe, a wrong size, a layout outside the file, NULLs; each refused with a status
   and a message. Linux only (memfd). */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define N 1000

/* The plain fields of a description, as they travel on the socket (the fd goes beside them). */
struct wire {
  uint64_t offset, size;
  DLDataType dtype;
  int32_t ndim;
  int64_t shape[2], strides[2];
  int32_t read_only;
};

static void send_desc(int sock, const dlshare_shm_desc *d) {
  struct wire w;
  memset(&w, 0, sizeof w);
  w.offset = d->offset;
  w.size = d->size;
  w.dtype = d->dtype;
  w.ndim = d->ndim;
  for (int i = 0; i < d->ndim; i++) {
    w.shape[i] = d->shape[i];
    w.strides[i] = d->strides[i];
  }
  w.read_only = d->read_only;
  struct iovec iov = {&w, sizeof w};
  char control[CMSG_SPACE(sizeof(int))];
  memset(control, 0, sizeof control);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &d->fd, sizeof(int));
  CHECK(sendmsg(sock, &msg, 0) == (ssize_t)sizeof w);
}

/* Receives a description; `w` keeps the shape and strides it points to. */
static dlshare_shm_desc recv_desc(int sock, struct wire *w) {
  struct iovec iov = {w, sizeof *w};
  char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  CHECK(recvmsg(sock, &msg, 0) == (ssize_t)sizeof *w);
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  CHECK(c != NULL && c->cmsg_type == SCM_RIGHTS);
  dlshare_shm_desc d;
  memset(&d, 0, sizeof d);
  memcpy(&d.fd, CMSG_DATA(c), sizeof(int));
  d.offset = w->offset;
  d.size = w->size;
  d.dtype = w->dtype;
  d.ndim = w->ndim;
  d.shape = w->shape;
  d.strides = w->strides;
  d.read_only = w->read_only != 0;
  return d;
}

static int consumer(int sock) {
  struct wire w;
  dlshare_shm_desc d = recv_desc(sock, &w);
  dlshare_tensor *t = NULL;
  CHECK_OK(dlshare_shm_import(&d, &t));
  CHECK(close(d.fd) == 0); /* the tensor keeps its own duplicate */
  bool shared = false;
  CHECK_OK(dlshare_tensor_is_shared_memory(t, &shared));
  CHECK(shared);
  DLTensor dl;
  CHECK_OK(dlshare_tensor_info(t, &dl, NULL));
  CHECK(dl.ndim == 2 && dl.shape[0] == 2 && dl.shape[1] == N / 2);
  float *x = (float *)((char *)dl.data + dl.byte_offset);
  for (int i = 0; i < N; i++) CHECK(x[i] == (float)i);
  x[7] = -7.0f; /* seen by the producer */
  CHECK_OK(dlshare_tensor_release(t));
  CHECK(dlshare_live_tensor_count() == 0);
  char done = 'y';
  CHECK(write(sock, &done, 1) == 1);
  return 0;
}

static void bad_descriptions(const dlshare_shm_desc *good) {
  dlshare_tensor *t = NULL;
  dlshare_shm_desc d = *good;
  d.size += 4096; /* stale or forged */
  CHECK_FAILS(dlshare_shm_import(&d, &t), DLSHARE_ERR_INVALID_ARGUMENT);
  CHECK(strstr(dlshare_last_error_message(), "stale or forged") != NULL);
  d = *good;
  int64_t too_long[2] = {2, N};
  d.shape = too_long;
  d.strides = NULL;
  CHECK_FAILS(dlshare_shm_import(&d, &t), DLSHARE_ERR_INVALID_ARGUMENT);
  CHECK(strstr(dlshare_last_error_message(), "outside") != NULL);
  int fds[2];
  CHECK(pipe(fds) == 0);
  d = *good;
  d.fd = fds[0]; /* not a memory file */
  CHECK_FAILS(dlshare_shm_import(&d, &t), DLSHARE_ERR_INVALID_ARGUMENT);
  CHECK(strstr(dlshare_last_error_message(), "not a dlshare shared-memory file") != NULL);
  close(fds[0]);
  close(fds[1]);
  d.fd = fds[0]; /* closed */
  CHECK_FAILS(dlshare_shm_import(&d, &t), DLSHARE_ERR_INVALID_ARGUMENT);
  CHECK(strstr(dlshare_last_error_message(), "cannot be used") != NULL);
  d = *good;
  d.dtype.code = 99;
  CHECK_FAILS(dlshare_shm_import(&d, &t), DLSHARE_ERR_UNSUPPORTED_DTYPE);
  d = *good;
  d.shape = NULL;
  CHECK_FAILS(dlshare_shm_import(&d, &t), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_shm_import(NULL, &t), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK_FAILS(dlshare_shm_import(good, NULL), DLSHARE_ERR_NULL_ARGUMENT);
  CHECK(t == NULL);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "consumer") == 0) return consumer(atoi(argv[2]));

  int64_t shape[2] = {2, N / 2};
  DLDataType f32 = {kDLFloat, 32, 1};
  dlshare_tensor *t = NULL;
  CHECK_OK(dlshare_tensor_empty_shared(f32, 2, shape, &t));
  DLTensor dl;
  CHECK_OK(dlshare_tensor_info(t, &dl, NULL));
  float *x = (float *)dl.data;
  for (int i = 0; i < N; i++) CHECK(x[i] == 0.0f); /* zero-filled */
  for (int i = 0; i < N; i++) x[i] = (float)i;

  dlshare_shm_desc desc;
  CHECK_OK(dlshare_shm_export(t, &desc));
  CHECK(desc.fd >= 0 && desc.offset == 0 && desc.size >= N * sizeof(float));
  CHECK(desc.ndim == 2 && desc.shape[1] == N / 2 && desc.strides[0] == N / 2);
  CHECK(!desc.read_only);

  /* a tensor not in shared memory has no description; share_memory copies it there once */
  dlshare_tensor *plain = NULL, *moved = NULL, *same = NULL;
  dlshare_shm_desc unused;
  CHECK_OK(dlshare_tensor_zeros(f32, 2, shape, (DLDevice){kDLCPU, 0}, &plain));
  CHECK_FAILS(dlshare_shm_export(plain, &unused), DLSHARE_ERR_INVALID_ARGUMENT);
  CHECK_OK(dlshare_tensor_share_memory(plain, &moved));
  CHECK_OK(dlshare_tensor_share_memory(t, &same));
  bool overlap = true;
  CHECK_OK(dlshare_tensor_shares_memory(plain, moved, &overlap));
  CHECK(!overlap);
  CHECK_OK(dlshare_tensor_shares_memory(t, same, &overlap));
  CHECK(overlap);
  CHECK_OK(dlshare_tensor_release(plain));
  CHECK_OK(dlshare_tensor_release(moved));
  CHECK_OK(dlshare_tensor_release(same));

  bad_descriptions(&desc);

  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(sv[0]);
    char arg[16];
    snprintf(arg, sizeof arg, "%d", sv[1]);
    /* argv[0], not /proc/self/exe: under Valgrind that is Valgrind itself */
    execl(strchr(argv[0], '/') ? argv[0] : "/proc/self/exe", argv[0], "consumer", arg,
          (char *)NULL);
    _exit(127);
  }
  close(sv[1]);
  send_desc(sv[0], &desc);
  char done = 0;
  CHECK(read(sv[0], &done, 1) == 1 && done == 'y');
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(sv[0]);
  CHECK(x[7] == -7.0f); /* the consumer's write */
  CHECK_OK(dlshare_tensor_release(t));
  CHECK(dlshare_live_tensor_count() == 0);
  printf("shared-memory tensor crossed to a consumer process and back\n");
  return 0;
}
