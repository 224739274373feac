

export const index = 2;
export const imports = ["_app/immutable/nodes/2.DhEU3IjI.js","_app/immutable/chunks/BdjtRh5_.js","_app/immutable/chunks/e2P2TJ7B.js"];
export const stylesheets = [];
export const fonts = [];
