

export const index = 1;
export const imports = ["_app/immutable/nodes/1.CVuTnIkf.js","_app/immutable/chunks/BdjtRh5_.js","_app/immutable/chunks/e2P2TJ7B.js","_app/immutable/chunks/D3n9fZkp.js","_app/immutable/chunks/ABl0nJJo.js","_app/immutable/chunks/C94c2cVy.js"];
export const stylesheets = [];
export const fonts = [];
