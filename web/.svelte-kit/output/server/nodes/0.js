

export const index = 0;
export const universal = {
  "ssr": false,
  "prerender": false
};
export const universal_id = "src/routes/+layout.ts";
export const imports = ["_app/immutable/nodes/0.Mfuz6r4u.js","_app/immutable/chunks/DqUpG-GO.js","_app/immutable/chunks/-l8Vi_oF.js","_app/immutable/chunks/Dq4K83qi.js","_app/immutable/chunks/H4GGnOMv.js","_app/immutable/chunks/Dpn2454S.js","_app/immutable/chunks/DZHXsysc.js","_app/immutable/chunks/DozyYy1b.js","_app/immutable/chunks/C240P7sl.js","_app/immutable/chunks/BHtBlxxO.js","_app/immutable/chunks/DiuuFnCE.js","_app/immutable/chunks/CLv6ION1.js","_app/immutable/chunks/Bg-zAhwr.js","_app/immutable/chunks/DUwPod-u.js","_app/immutable/chunks/HbGxz5vi.js","_app/immutable/chunks/krn-fY6h.js","_app/immutable/chunks/-zIMhlaP.js","_app/immutable/chunks/DRyvbKGl.js","_app/immutable/chunks/H9IpRFZK.js"];
export const stylesheets = ["_app/immutable/assets/0.CN-COOkd.css"];
export const fonts = [];
