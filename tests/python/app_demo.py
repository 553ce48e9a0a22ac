#!/usr/bin/python3
"""libsnap's in-process API from Python through ctypes: callbacks and a self-checkpoint.

Usage: app_demo.py LIBSNAP_SO IMAGES_DIR LOG_FILE

Registers one pair of callbacks, checkpoints itself into IMAGES_DIR and
appends to LOG_FILE what happened, in order. The original logs "before",
"after continue", "original" and exits; a copy restored from IMAGES_DIR
logs "after restore N" and "restored" and exits. Exit status 0 when
everything was as expected. Standard library only.
"""
import ctypes
import os
import sys

SNAP_APP_BEFORE_CHECKPOINT = 1
SNAP_APP_AFTER_CONTINUE = 2
SNAP_APP_AFTER_RESTORE = 3
SNAP_APP_ORIGINAL = 1
SNAP_APP_RESTORED = 2

# int (*snap_app_fn)(void *opaque, enum snap_app_event event)
SNAP_APP_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)


def main():
    lib_path, images_dir, log_path = sys.argv[1:4]
    lib = ctypes.CDLL(lib_path, use_errno=True)
    lib.snap_app_register.argtypes = [SNAP_APP_FN, SNAP_APP_FN, ctypes.c_void_p]
    lib.snap_app_register.restype = ctypes.c_int
    lib.snap_app_restore_count.restype = ctypes.c_uint
    lib.snap_app_checkpoint.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_int),
                                        ctypes.c_char_p, ctypes.c_size_t]
    lib.snap_app_checkpoint.restype = ctypes.c_int

    def log(line):
        # Opened per line: an fd held across the checkpoint would be restored at its old offset.
        with open(log_path, "a") as f:
            f.write(line + "\n")

    # The callbacks run on libsnap's control thread; ctypes takes the GIL for them.
    def before(opaque, event):
        log("before" if event == SNAP_APP_BEFORE_CHECKPOINT else "before? %d" % event)
        return 0

    def after(opaque, event):
        if event == SNAP_APP_AFTER_RESTORE:
            # Where a real service reconnects to its database and reseeds its generators.
            log("after restore %d" % lib.snap_app_restore_count())
        elif event == SNAP_APP_AFTER_CONTINUE:
            log("after continue")
        else:
            log("after? %d" % event)
        return 0

    # Kept referenced for as long as libsnap may call them.
    main.callbacks = (SNAP_APP_FN(before), SNAP_APP_FN(after))
    if lib.snap_app_register(main.callbacks[0], main.callbacks[1], None):
        print("snap_app_register failed", file=sys.stderr)
        return 2

    print("pid %d" % os.getpid(), flush=True)
    outcome = ctypes.c_int(0)
    err = ctypes.create_string_buffer(1024)
    # CDLL calls release the GIL, so the control thread can run the Python callbacks meanwhile.
    r = lib.snap_app_checkpoint(images_dir.encode(), 0, ctypes.byref(outcome), err, len(err))
    if r:
        print("snap_app_checkpoint: %s (%d)" % (err.value.decode(errors="replace"), r), file=sys.stderr)
        return 1
    if outcome.value == SNAP_APP_ORIGINAL:
        log("original")
    elif outcome.value == SNAP_APP_RESTORED:
        log("restored")
    else:
        print("unexpected outcome %d" % outcome.value, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
