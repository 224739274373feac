

export const index = 1;
export const imports = ["_app/immutable/nodes/1.quuid3qH.js","_app/immutable/chunks/DqUpG-GO.js","_app/immutable/chunks/-l8Vi_oF.js","_app/immutable/chunks/DUwPod-u.js","_app/immutable/chunks/DiuuFnCE.js","_app/immutable/chunks/DozyYy1b.js","_app/immutable/chunks/C240P7sl.js","_app/immutable/chunks/BHtBlxxO.js"];
export const stylesheets = [];
export const fonts = [];
