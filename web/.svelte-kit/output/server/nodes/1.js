

export const index = 1;
export const imports = ["_app/immutable/nodes/1.BKuS78jZ.js","_app/immutable/chunks/DqUpG-GO.js","_app/immutable/chunks/-l8Vi_oF.js","_app/immutable/chunks/DUwPod-u.js","_app/immutable/chunks/BipJ5CEU.js","_app/immutable/chunks/BsTblXkf.js","_app/immutable/chunks/C240P7sl.js","_app/immutable/chunks/BHtBlxxO.js"];
export const stylesheets = [];
export const fonts = [];
