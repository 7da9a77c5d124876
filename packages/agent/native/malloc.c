/*
 * Gives freed heap memory back to the operating system (glibc's malloc_trim).
 *
 * glibc returns memory freed inside its heap only from the top of the heap: the pages of freed
 * network buffers that sit below live allocations stay resident. After building a large view
 * (pulling many records), 100+ MB of an agent's resident memory was such free memory; one
 * malloc_trim(0) after the compacting collection returns it. Built at install time (see
 * scripts/build-native.mjs); the agent runs without it when it could not be built.
 *
 * Node-API only (ABI-stable across Node versions), no node-gyp.
 */
#include <node_api.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* trim(): true when memory was released, false when nothing was; undefined without glibc. */
static napi_value Trim (napi_env env, napi_callback_info info) {
  napi_value result;
  (void)info;
#ifdef __GLIBC__
  napi_get_boolean(env, malloc_trim(0) != 0, &result);
#else
  napi_get_undefined(env, &result);
#endif
  return result;
}

/* freeBytes(): bytes free inside malloc's arenas (mallinfo2().fordblks), or -1 when unknown. */
static napi_value FreeBytes (napi_env env, napi_callback_info info) {
  napi_value result;
  double bytes = -1;
  (void)info;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  bytes = (double)mi.fordblks;
#endif
  napi_create_double(env, bytes, &result);
  return result;
}

NAPI_MODULE_INIT (/* napi_env env, napi_value exports */) {
  napi_value fn;
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  napi_create_function(env, "freeBytes", NAPI_AUTO_LENGTH, FreeBytes, NULL, &fn);
  napi_set_named_property(env, exports, "freeBytes", fn);
  return exports;
}
