

export const index = 0;
export const universal = {
  "ssr": false,
  "prerender": false
};
export const universal_id = "src/routes/+layout.ts";
export const imports = ["_app/immutable/nodes/0.DRkHG5_H.js","_app/immutable/chunks/BdjtRh5_.js","_app/immutable/chunks/e2P2TJ7B.js","_app/immutable/chunks/Dfveo1S_.js"];
export const stylesheets = [];
export const fonts = [];
