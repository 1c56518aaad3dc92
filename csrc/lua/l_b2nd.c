/* lunet.core.b2nd: read(path) -> host Tensor, for Blosc2 NDArray files (.b2nd) as nnunetv2 writes them
 * (csrc/fmt/b2nd.h says which codecs and filters). */
#include "fmt/b2nd.h"
#include "lua/l_common.h"

static int l_read(lua_State *L) {
  lu_tensor *t = NULL;
  LU_LCHECK(L, lu_b2nd_read(luaL_checkstring(L, 1), &t), "b2nd.read");
  lu_lua_push_tensor(L, t);
  return 1;
}

int lu_open_b2nd(lua_State *L) {
  static const luaL_Reg fns[] = {{"read", l_read}, {NULL, NULL}};
  lua_newtable(L);
  lu_lua_setfuncs(L, fns);
  return 1;
}
