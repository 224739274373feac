import{a as r,f as e}from"../chunks/BdjtRh5_.js";import{bc as m}from"../chunks/e2P2TJ7B.js";m();var p=e("<h1>Troupe</h1>");function n(o){var a=p();r(o,a)}export{n as component};
