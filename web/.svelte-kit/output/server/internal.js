import "./chunks/root.js";
import { s, e, f } from "./chunks/internal.js";
import { g, o, c, s as s2, a, b } from "./chunks/internal2.js";
export {
  g as get_hooks,
  o as options,
  s as set_assets,
  e as set_building,
  c as set_manifest,
  f as set_prerendering,
  s2 as set_private_env,
  a as set_public_env,
  b as set_read_implementation
};
