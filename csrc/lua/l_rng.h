/* The rng userdata shared by bindings that take a generator (sampler, augment). */
#ifndef LU_L_RNG_H
#define LU_L_RNG_H

#include <lua.h>

#include "core/rng.h"

#define LU_RNG_MT "lunet.Rng"

lu_rng *lu_lua_check_rng(lua_State *L, int idx);
/* Pushes a new rng userdata (copy of r). */
void lu_lua_push_rng(lua_State *L, const lu_rng *r);

#endif
