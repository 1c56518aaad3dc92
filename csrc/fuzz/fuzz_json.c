/* libFuzzer harness for Lunet's JSON decoder (lua/lunet/util/json.lua) and lua-cjson, which reads
 * plans in lunet.net: an embedded Lua 5.4 loads json.lua once, then each input is decoded inside
 * pcall. A Lua error is the expected answer to bad input, as long as it is the decoder's own
 * message (it starts with the name given to decode); an internal error (an index of nil, a stack
 * overflow), a failed round trip (encode(decode(s)) must decode and encode to the same text), a
 * C-level crash, a hang or runaway memory is a bug. liblua is not instrumented, so the harness
 * feeds libFuzzer Lua line-to-line transitions as extra coverage counters from a line hook. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>

#ifndef LU_ROOT
#error "build with -DLU_ROOT=\"<repository root>\" (scripts/fuzz.sh does)"
#endif

#define EDGES (1u << 16)
#define MEM_LIMIT ((size_t)512 << 20) /* a <= 64 KiB input has no business needing more */

__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t lua_edges[EDGES];
static int prev_line;
static size_t mem_used;
static lua_State *L;

static void on_line(lua_State *l, lua_Debug *ar) {
  (void)l;
  uint32_t e = ((uint32_t)prev_line * 2654435761u ^ (uint32_t)ar->currentline) & (EDGES - 1);
  if (lua_edges[e] < 255) lua_edges[e]++;
  prev_line = ar->currentline;
}

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (!ptr) osize = 0;
  if (nsize == 0) {
    free(ptr);
    mem_used -= osize;
    return NULL;
  }
  if (mem_used - osize + nsize > MEM_LIMIT) {
    fprintf(stderr, "fuzz_json: the decoder holds more than %zu MiB\n", MEM_LIMIT >> 20);
    abort();
  }
  void *p = realloc(ptr, nsize);
  if (p) mem_used = mem_used - osize + nsize;
  return p;
}

static const char *k_driver =
  "package.path = ... .. '/lua/?.lua;' .. package.path\n"
  "local json = require 'lunet.util.json'\n"
  "local has_cjson, cjson = pcall(require, 'cjson')\n"
  "return function(s)\n"
  "  local ok, v = pcall(json.decode, s, 'fuzz')\n"
  "  if not ok then\n"
  "    if type(v) ~= 'string' or v:sub(1, 6) ~= 'fuzz: ' then error('BUG: not a decoder error: ' .. tostring(v), 0) end\n"
  "  else\n"
  "    local ok1, e1 = pcall(json.encode, v)\n"
  "    if ok1 then\n"
  "      local ok2, v2 = pcall(json.decode, e1, 'again')\n"
  "      if not ok2 then error('BUG: encode(decode(s)) does not decode: ' .. tostring(v2), 0) end\n"
  "      local e2 = json.encode(v2)\n"
  "      if e1 ~= e2 then error('BUG: round trip changed ' .. e1 .. ' into ' .. e2, 0) end\n"
  "    end\n"
  "  end\n"
  "  if has_cjson then pcall(cjson.decode, s) end\n"
  "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  L = lua_newstate(counting_alloc, NULL);
  if (!L) abort();
  luaL_openlibs(L);
  if (luaL_loadstring(L, k_driver) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); abort(); }
  lua_pushstring(L, LU_ROOT);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); abort(); }
  lua_setfield(L, LUA_REGISTRYINDEX, "lunet.fuzz.check");
  lua_sethook(L, on_line, LUA_MASKLINE, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static unsigned runs;
  prev_line = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, "lunet.fuzz.check");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_json: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  if (++runs % 4096 == 0) lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
